import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign sweep`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("sweep")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign sweep is not implemented yet");
    });
}
