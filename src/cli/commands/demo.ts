import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign demo`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("demo")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign demo is not implemented yet");
    });
}
