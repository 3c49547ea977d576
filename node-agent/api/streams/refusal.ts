/** A stream request refused before the upgrade, answered as an HTTP error with a reason. */
export class StreamRefusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}
