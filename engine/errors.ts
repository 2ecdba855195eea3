/**
 * An error caused by the user's input (a file, a field, an option), as opposed to a bug.
 * The message is one line that names the file / line / field and what is wrong; the CLI
 * prints it and exits with code 2, the extension shows it and may offer to open `file` at `line`.
 */
export class ExcitorInputError extends Error {
  override readonly name = "ExcitorInputError";
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
  ) {
    super(message.replace(/\s*\n\s*/g, " "));
  }
}

/** Throws an ExcitorInputError unless `cond` holds. */
export function check(cond: unknown, message: string, file?: string, line?: number): asserts cond {
  if (!cond) throw new ExcitorInputError(message, file, line);
}
