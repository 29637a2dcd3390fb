// The problems parseConfig() reports for a YAML text, as "path: message" lines; fails when it reports none.

import { ConfigError, parseConfig } from '../../src/config/config.js';

export function configIssues(yaml: string): string[] {
  try {
    parseConfig(yaml);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a ConfigError');
}
