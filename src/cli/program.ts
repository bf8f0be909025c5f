/**
 * The command tree, as a declaration. Each command lives in `commands/<name>.ts`, declares its flags and
 * lazily imports the library code it runs, so start-up stays fast and commands never load each other.
 */
import { Command } from "commander";
import { VERSION } from "../version.ts";
import { formatCommanderError } from "./render.ts";
import * as merge from "./commands/merge.ts";
import * as convert from "./commands/convert.ts";
import * as generate from "./commands/generate.ts";
import * as serve from "./commands/serve.ts";
import * as evalCmd from "./commands/eval.ts";
import * as sweep from "./commands/sweep.ts";
import * as report from "./commands/report.ts";
import * as demo from "./commands/demo.ts";

/** Every command module exports `register(program)`. The order here is the order in `--help`. */
const COMMANDS: ReadonlyArray<{ register(program: Command): void }> = [
  merge,
  convert,
  evalCmd,
  sweep,
  report,
  generate,
  serve,
  demo,
];

export function buildProgram(): Command {
  const program = new Command("realign")
    .description("Restore the safety of fine-tuned LLMs by merging them with their aligned model (arXiv 2412.19512).")
    .version(VERSION)
    .exitOverride();
  for (const c of COMMANDS) c.register(program);
  // commander's own parse errors (unknown command/option, missing value, invalid choice) in realign's form:
  // `realign: …` + `  hint: did you mean …? (run realign <cmd> --help)`; main.ts maps them to exit 2.
  // Help and --version still go to stdout (writeOut) and exit 0.
  for (const cmd of [program, ...program.commands]) {
    const path = cmd === program ? "realign" : `realign ${cmd.name()}`;
    cmd.exitOverride().configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(formatCommanderError(s, path) + "\n"),
    });
  }
  return program;
}
