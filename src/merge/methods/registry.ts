/** The only list of merge methods. Add a method: one file in this folder, one line here. */
import type { MergeMethod } from "./types.ts";
import { linear } from "./linear.ts";
import { taskArithmetic } from "./task-arithmetic.ts";

export const METHODS: Readonly<Record<string, MergeMethod<any>>> = {
  linear,
  task_arithmetic: taskArithmetic,
};

export function getMethod(name: string): MergeMethod<any> | undefined {
  return Object.prototype.hasOwnProperty.call(METHODS, name) ? METHODS[name] : undefined;
}
