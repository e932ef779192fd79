// Plugin loading: built-in names, paths relative to the config file, package names.
// Built-ins are literal dynamic imports so tsup emits them as chunks and vitest
// transforms them (toolchain notes §5).
import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { inject, injectable, injectAll, Lifecycle } from "tsyringe";
import type { DependencyContainer } from "tsyringe";
import { ConfigError, PHASES, Tokens } from "./api.js";
import type { HostApi, MonitorPlugin, Phase } from "./api.js";
import type { MachineConfig, PluginRef } from "./config.js";
import { suggest } from "./units.js";

export const BUILTIN_PLUGINS: Readonly<Record<string, () => Promise<unknown>>> = {
  vmx: () => import("../../plugins/vmx/src/index.js"),
  svm: () => import("../../plugins/svm/src/index.js"),
  "devices-lpc": () => import("../../plugins/devices-lpc/src/index.js"),
  realmode: () => import("../../plugins/realmode/src/index.js"),
};

/** What every plugin gets as the 3rd argument of register(): enough to need no imports at all. */
export const HOST_API: HostApi = { tokens: Tokens, inject, injectable, injectAll, Lifecycle, ConfigError };

/** A plugin module failed to load or is not a plugin. */
export class PluginLoadError extends ConfigError {}

export interface LoadedPlugin {
  readonly ref: PluginRef;
  readonly plugin: MonitorPlugin;
  /** The result of the plugin's parseConfig. */
  readonly options: unknown;
}

export function isPathSpec(spec: string): boolean {
  return spec.startsWith("./") || spec.startsWith("../") || isAbsolute(spec);
}

/**
 * A path spec to a file URL: a file as is; a folder through its package.json
 * ("exports" string or "." → default/import, then "main"), else its index.js.
 */
export function resolvePathSpec(spec: string, baseDir: string): string | undefined {
  const abs = resolve(baseDir, spec);
  if (!existsSync(abs)) return undefined;
  if (statSync(abs).isFile()) return pathToFileURL(abs).href;
  const pkgFile = join(abs, "package.json");
  if (existsSync(pkgFile)) {
    const pkg = JSON.parse(readFileSync(pkgFile, "utf8")) as { main?: string; exports?: unknown };
    let entry: unknown = pkg.exports;
    if (entry && typeof entry === "object" && "." in entry) entry = (entry as Record<string, unknown>)["."];
    if (entry && typeof entry === "object") {
      const cond = entry as Record<string, unknown>;
      entry = cond["import"] ?? cond["default"];
    }
    const target = typeof entry === "string" ? entry : pkg.main;
    if (target && existsSync(join(abs, target))) return pathToFileURL(join(abs, target)).href;
  }
  const index = join(abs, "index.js");
  return existsSync(index) ? pathToFileURL(index).href : undefined;
}

/** Why `mod` is not a plugin module, or undefined if its default export looks like a MonitorPlugin. */
function notAPlugin(mod: unknown): string | undefined {
  const p = (mod as { default?: unknown } | null)?.default as Partial<MonitorPlugin> | undefined;
  if (!p || typeof p !== "object") return "its module has no default export object";
  if (typeof p.id !== "string" || p.id === "") return "its default export has no string `id`";
  if (!PHASES.includes(p.phase as Phase)) return `its default export's phase ${JSON.stringify(p.phase)} is not one of ${PHASES.join(", ")}`;
  if (typeof p.parseConfig !== "function") return "its default export has no parseConfig()";
  if (typeof p.register !== "function") return "its default export has no register()";
  return undefined;
}

function isModuleNotFound(e: unknown, spec: string): boolean {
  const err = e as NodeJS.ErrnoException;
  return (err?.code === "ERR_MODULE_NOT_FOUND" || err?.code === "MODULE_NOT_FOUND"
    || /Cannot find (module|package)|Failed to load url/.test(err?.message ?? ""))
    && (err.message ?? "").includes(spec);
}

/** Load one plugin module and check its shape; `path` is where it sits in the config. */
export async function loadPluginModule(spec: string, path: string, baseDir: string, file?: string): Promise<MonitorPlugin> {
  const at = `${path}.use`;
  let mod: unknown;
  const builtin = Object.hasOwn(BUILTIN_PLUGINS, spec) ? BUILTIN_PLUGINS[spec] : undefined;
  try {
    if (builtin) {
      mod = await builtin();
    } else if (isPathSpec(spec)) {
      const url = resolvePathSpec(spec, baseDir);
      if (!url) throw new PluginLoadError(at, `no plugin at ${resolve(baseDir, spec)} (a .js file, or a folder with package.json or index.js)`, file);
      mod = await import(url);
    } else {
      mod = await import(spec);
    }
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (!builtin && !isPathSpec(spec) && isModuleNotFound(e, spec)) {
      const hint = suggest(spec, Object.keys(BUILTIN_PLUGINS));
      throw new PluginLoadError(at, `unknown plugin "${spec}": not a built-in (${Object.keys(BUILTIN_PLUGINS).join(", ")}), not a path (./x, ../x, /x) and no installed package of that name${hint ? ` (did you mean "${hint}"?)` : ""}`, file);
    }
    throw new PluginLoadError(at, `plugin "${spec}" failed to load: ${(e as Error).message ?? String(e)}`, file);
  }
  const why = notAPlugin(mod);
  if (why) throw new PluginLoadError(at, `"${spec}" is not an hvkit plugin: ${why}`, file);
  return (mod as { default: MonitorPlugin }).default;
}

/**
 * Load the backend and every plugin, parse each one's options, and return them in
 * registration order: by phase (PHASES), then in config order (the backend first).
 */
export async function loadPlugins(config: MachineConfig): Promise<LoadedPlugin[]> {
  const refs = [config.backend, ...config.plugins];
  const loaded: LoadedPlugin[] = [];
  for (const ref of refs) {
    const plugin = await loadPluginModule(ref.use, ref.path, config.dir, config.file);
    if (ref.path === "backend" && plugin.phase !== "backend") {
      throw new ConfigError("backend", `plugin "${ref.use}" (${plugin.id}) is a ${plugin.phase}-phase plugin, not a backend; list it under plugins`, config.file);
    }
    let options: unknown;
    try {
      options = plugin.parseConfig(ref.options, `${ref.path}.options`);
    } catch (e) {
      if (e instanceof ConfigError) {
        // Plugins do not know the file name: add it.
        throw e.file || !config.file ? e : new ConfigError(e.path, e.detail, config.file);
      }
      throw new ConfigError(`${ref.path}.options`, `plugin ${plugin.id} rejected its options: ${(e as Error).message}`, config.file);
    }
    loaded.push({ ref, plugin, options });
  }
  return loaded.sort((a, b) => PHASES.indexOf(a.plugin.phase) - PHASES.indexOf(b.plugin.phase));
}

/** Register the plugins into `vm` in order, checking each one's `requires` first. */
export async function registerPlugins(vm: DependencyContainer, plugins: readonly LoadedPlugin[], file?: string): Promise<void> {
  const done = new Set<string>();
  for (const { ref, plugin, options } of plugins) {
    for (const req of plugin.requires ?? []) {
      if (done.has(req)) continue;
      const later = plugins.find((p) => p.plugin.id === req);
      throw new ConfigError(ref.path, later
        ? `plugin ${plugin.id} requires ${req}, which registers after it (phase ${later.plugin.phase} vs ${plugin.phase})`
        : `plugin ${plugin.id} requires plugin ${req}, which the config does not load`, file);
    }
    await plugin.register(vm, options, HOST_API);
    done.add(plugin.id);
  }
}
