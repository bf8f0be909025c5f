import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign report`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("report")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign report is not implemented yet");
    });
}
