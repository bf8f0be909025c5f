import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign generate`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("generate")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign generate is not implemented yet");
    });
}
