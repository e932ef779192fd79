import { container, inject, injectable, injectAll, Lifecycle } from "tsyringe";
import { describe, expect, it } from "vitest";
import { MapPerm, ObjType, SysErr, bootKernel, softEngine } from "../../../src/kernel/index.js";
import { ConfigError, Tokens, type HostApi, type MachineCaps } from "../../../src/monitor/api.js";
import plugin, { SvmBackend, SvmInstallError, parseSvmConfig } from "./index.js";

const HOST: HostApi = { tokens: Tokens, inject, injectable, injectAll, Lifecycle, ConfigError };

function missingInjectTokens(ctor: abstract new (...a: never[]) => unknown): number[] {
  const t = (Reflect.getOwnMetadata("injectionTokens", ctor) ?? {}) as Record<string, unknown>;
  const missing: number[] = [];
  for (let i = 0; i < ctor.length; i++) if (!(i in t)) missing.push(i);
  return missing;
}

function vmContainer() {
  const k = bootKernel({ engine: softEngine(), ramBytes: 32 * 4096 });
  const sys = k.syscalls;
  const step = (e: SysErr) => expect(e).toBe(SysErr.Ok);
  step(sys.ramRetype(k.ram, ObjType.Frame, 16 * 4096)); const ram = sys.ret.cap;
  step(sys.ramRetype(k.ram, ObjType.GuestPhysSpace, 4096)); const gpspace = sys.ret.cap;
  step(sys.gpspaceMap(gpspace, ram, 0, MapPerm.RWX));
  step(sys.ramRetype(k.ram, ObjType.Frame, 4096)); const guestControl = sys.ret.cap;
  step(sys.frameMap(guestControl)); const gc = sys.ret.view!;
  step(sys.ramRetype(k.ram, ObjType.Dispatcher, 4096)); const dispatcher = sys.ret.cap;
  const caps: MachineCaps = { ram: k.ram, gpspace, dispatcher, guestControl, guestRegs: new Uint32Array(gc.buffer, gc.byteOffset, 8) };
  const vm = container.createChildContainer();
  vm.register(Tokens.Syscalls, { useValue: sys });
  vm.register(Tokens.MachineCaps, { useValue: caps });
  vm.register(Tokens.KernelExtensionHost, { useValue: k.extensions });
  return vm;
}

describe("plugins/svm module", () => {
  it("declares id svm in the backend phase", () => {
    expect(plugin.id).toBe("svm");
    expect(plugin.phase).toBe("backend");
  });

  it("accepts no options, or an empty object", () => {
    expect(parseSvmConfig(undefined, "backend.options")).toEqual({});
    expect(parseSvmConfig({}, "backend.options")).toEqual({});
  });

  it("accepts npt as a boolean and rejects any other value with its path", () => {
    expect(parseSvmConfig({ npt: true }, "backend.options")).toEqual({ npt: true });
    expect(parseSvmConfig({ npt: false }, "backend.options")).toEqual({ npt: false });
    try { parseSvmConfig({ npt: 1 }, "backend.options"); expect.unreachable(); } catch (e) { expect((e as ConfigError).path).toBe("backend.options.npt"); }
  });

  it("rejects an unknown key with its path", () => {
    expect(() => plugin.parseConfig({ asid: 2 }, "backend.options")).toThrow(ConfigError);
    try {
      plugin.parseConfig({ asid: 2 }, "backend.options");
    } catch (e) {
      expect((e as ConfigError).path).toBe("backend.options.asid");
    }
    expect(() => plugin.parseConfig(3, "backend.options")).toThrow(/expected an object/);
  });

  it("has an @inject token on every constructor parameter of SvmBackend", () => {
    expect(missingInjectTokens(SvmBackend)).toEqual([]);
  });

  it("installs the kernel half and binds SvmBackend as the VM's VcpuBackend (container-scoped)", () => {
    const vm = vmContainer();
    plugin.register(vm, {}, HOST);
    const backend = vm.resolve(Tokens.VcpuBackend);
    expect(backend).toBeInstanceOf(SvmBackend);
    expect(vm.resolve(Tokens.VcpuBackend)).toBe(backend);
    expect(backend.id).toBe("svm");
    // Zeroed RAM at 0000:0000 decodes as ADD [BX+SI],AL forever: the timeslice ends (INTR).
    backend.setState({ ...backend.getState(), eip: 0, cs: { selector: 0, base: 0, limit: 0xffff, attrib: 0x9b } });
    expect(backend.run().kind).toBe("preempt");
  });

  it("throws SvmInstallError when the kernel already has an extension", () => {
    const vm = vmContainer();
    plugin.register(vm, {}, HOST);
    expect(() => plugin.register(vm, {}, HOST)).toThrow(SvmInstallError);
  });
});
