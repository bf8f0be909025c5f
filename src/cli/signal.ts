/** The CLI's cancellation signal: aborted on the first Ctrl-C / SIGTERM. Commands pass it to library calls. */
export const cliAbortController = new AbortController();
export const cliSignal: AbortSignal = cliAbortController.signal;
