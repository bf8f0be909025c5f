import type { Command } from "commander";
import { UsageError } from "../../errors.ts";

/** `realign serve`: not implemented yet (placeholder registered so --help lists it). */
export function register(program: Command): void {
  program
    .command("serve")
    .description("(not implemented yet)")
    .allowUnknownOption()
    .action(() => {
      throw new UsageError("cli.not_implemented", "realign serve is not implemented yet");
    });
}
