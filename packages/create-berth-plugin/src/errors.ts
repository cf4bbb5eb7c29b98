/** The scaffolder's one error type: what the user asked for cannot be done (exit code 1, the message shown). */
export class CreatePluginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CreatePluginError';
  }
}
