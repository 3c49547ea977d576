/** A failure the user should read, printed without a stack; exit status 1. */
export class CliError extends Error {}
