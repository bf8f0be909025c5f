import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign convert`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("convert")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign convert is not implemented yet");
    });
}
