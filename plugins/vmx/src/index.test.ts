import { describe, expect, it } from "vitest";
import { container } from "tsyringe";
import { ConfigError, Tokens } from "../../../src/monitor/api.js";
import { SysErr, type KernelExtensionHost, type VirtExtension } from "../../../src/kernel/api.js";
import plugin, { VmxExtension, VmxInstallError } from "./index.js";
import { VmxBackend } from "./monitor/vmx-backend.js";
import { testMachine } from "./testing/machine.js";

describe("plugins/vmx module", () => {
  it("is a backend-phase plugin with id vmx", () => {
    expect(plugin.id).toBe("vmx");
    expect(plugin.phase).toBe("backend");
  });

  it("accepts no options or an empty object, and rejects unknown keys with their path", () => {
    expect(plugin.parseConfig(undefined, "backend")).toEqual({});
    expect(plugin.parseConfig({}, "backend")).toEqual({});
    expect(() => plugin.parseConfig({ vpid: true }, "backend.options")).toThrow(ConfigError);
    try { plugin.parseConfig({ vpid: true }, "backend.options"); } catch (e) { expect((e as ConfigError).path).toBe("backend.options.vpid"); }
    expect(() => plugin.parseConfig(null, "backend.options")).toThrow(ConfigError);
    expect(() => plugin.parseConfig([], "backend.options")).toThrow(ConfigError);
  });

  it("accepts ept as a boolean and rejects any other value with its path", () => {
    expect(plugin.parseConfig({ ept: true }, "backend.options")).toEqual({ ept: true });
    expect(plugin.parseConfig({ ept: false }, "backend.options")).toEqual({ ept: false });
    try { plugin.parseConfig({ ept: "yes" }, "backend.options"); expect.unreachable(); } catch (e) { expect((e as ConfigError).path).toBe("backend.options.ept"); }
  });

  it("installs the kernel half and binds VmxBackend as the VM's VcpuBackend", () => {
    const installed: VirtExtension[] = [];
    const host: KernelExtensionHost = { engineName: "soft", install: (e) => { installed.push(e); return SysErr.Ok; } };
    const vm = container.createChildContainer();
    vm.register(Tokens.KernelExtensionHost, { useValue: host });
    plugin.register(vm, {}, undefined as never);
    expect(installed).toHaveLength(1);
    expect(installed[0]).toBeInstanceOf(VmxExtension);
    expect(installed[0]!.kind).toBe("vmx");
    expect(vm.isRegistered(Tokens.VcpuBackend)).toBe(true);
  });

  it("resolves a working backend against a real kernel after register()", () => {
    const m = testMachine(); // the real kernel already has a VmxExtension; the host here only accepts the plugin's
    const vm = container.createChildContainer();
    vm.register(Tokens.KernelExtensionHost, { useValue: { engineName: "soft", install: () => SysErr.Ok } });
    vm.register(Tokens.Syscalls, { useValue: m.sys });
    vm.register(Tokens.MachineCaps, { useValue: m.caps });
    plugin.register(vm, {}, undefined as never);
    const be = vm.resolve(Tokens.VcpuBackend);
    expect(be).toBeInstanceOf(VmxBackend);
    expect(vm.resolve(Tokens.VcpuBackend)).toBe(be);
  });

  it("throws VmxInstallError naming the engine when the kernel refuses the extension", () => {
    const vm = container.createChildContainer();
    vm.register(Tokens.KernelExtensionHost, { useValue: { engineName: "soft", install: () => SysErr.ExtensionInstalled } });
    expect(() => plugin.register(vm, {}, undefined as never)).toThrow(VmxInstallError);
    expect(() => plugin.register(vm, {}, undefined as never)).toThrow(/soft.*extension-installed/);
  });
});
