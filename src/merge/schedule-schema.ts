/** zod schema of a parameter value (schedule.ts): kept apart so resolving schedules never loads zod. */
import { z } from "zod";

const scalarSchema = z.union([z.number(), z.boolean(), z.string()]);
const gradientSchema = z.array(scalarSchema).min(1, "a gradient needs at least one value");
const filterEntrySchema = z.strictObject({ filter: z.string().optional(), value: z.union([scalarSchema, gradientSchema]) });

export const scheduleValueSchema = z.union([scalarSchema, gradientSchema, z.array(filterEntrySchema).min(1, "a filter list needs at least one entry")]);

