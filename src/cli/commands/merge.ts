import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign merge`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("merge")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign merge is not implemented yet");
    });
}
