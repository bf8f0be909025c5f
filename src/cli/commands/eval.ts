import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign eval`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("eval")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign eval is not implemented yet");
    });
}
