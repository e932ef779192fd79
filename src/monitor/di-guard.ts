// Without emitDecoratorMetadata a constructor parameter missing its @inject(TOKEN) is
// silently injected as undefined (toolchain notes §3). Tests run this over every
// @injectable class to catch that.

/** Indices of constructor parameters that have no @inject token. Expect [] for every injectable class. */
export function missingInjectTokens(ctor: abstract new (...a: never[]) => unknown): number[] {
  const t = (Reflect.getOwnMetadata("injectionTokens", ctor) ?? {}) as Record<string, unknown>;
  const missing: number[] = [];
  for (let i = 0; i < ctor.length; i++) if (!(i in t)) missing.push(i);
  return missing;
}
