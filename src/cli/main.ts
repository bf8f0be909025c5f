/**
 * realign's process boundary: parses argv, runs the command, and is the only place that prints errors
 * and picks the exit code. RealignError → its exitCode (2 bad input, 3 environment, 130 cancelled);
 * anything else is a bug → exit 1. Stack traces only with REALIGN_DEBUG=1.
 */
import { CommanderError } from "commander";
import { buildProgram } from "./program.ts";
import { formatError, errorJson } from "./render.ts";
import { cliAbortController } from "./signal.ts";
import { RealignError } from "../errors.ts";

const debug = process.env.REALIGN_DEBUG === "1";
const wantsJson = process.argv.includes("--json");

let interrupts = 0;
process.on("SIGINT", () => {
  interrupts++;
  if (interrupts === 1) {
    cliAbortController.abort();
    process.stderr.write("\nrealign: interrupted, cleaning up (Ctrl-C again to force)\n");
  } else {
    process.exit(130);
  }
});
process.on("SIGTERM", () => {
  cliAbortController.abort();
});

async function main(): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message (unknown option, missing argument, help, version)
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") {
        return 0;
      }
      return 2;
    }
    if (debug) console.error(e);
    if (wantsJson) process.stdout.write(JSON.stringify(errorJson(e)) + "\n");
    process.stderr.write(formatError(e) + "\n");
    return e instanceof RealignError ? e.exitCode : 1;
  }
}

const code = await main();
process.exitCode = code;
