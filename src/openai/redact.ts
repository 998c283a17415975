// Messages a client sees must not show where things live on the server (model files, the
// trainer's work folders, a home directory): absolute paths are cut to their last part. The
// log keeps the whole message.

/** An absolute POSIX path of two or more parts (a URL's path is not preceded by whitespace, a quote or a bracket here). */
const ABSOLUTE_PATH = /(^|[\s'"`(=[])\/(?:[^\s'"`()\]/:;,]+\/)+([^\s'"`()\]/:;,]*)/g;

/** `message` with every absolute path replaced by its file name (`…/name`). */
export function withoutPaths(message: string): string {
  return message.replace(ABSOLUTE_PATH, (_m, before: string, last: string) => `${before}…/${last}`);
}
