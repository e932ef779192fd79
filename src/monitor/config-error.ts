// Configuration and host problems are typed errors naming what is wrong (STYLE rule 2).

/** A configuration problem; `path` is a JSON path such as `plugins[2].options.irq`. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly path: string, readonly detail: string, readonly file?: string) {
    super(`${file ? `${file}: ` : ""}${path || "(root)"}: ${detail}`);
  }
}
