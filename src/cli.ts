#!/usr/bin/env node
// The `hvkit` executable (dist/cli.js). tsyringe needs the Reflect polyfill first (toolchain notes §4).
import "reflect-metadata";
import { main } from "./monitor/cli-main.js";

const status = await main(process.argv.slice(2));
process.exitCode = status;
// A plugin that leaves a handle open (a timer, a file) must not keep a finished run alive.
setTimeout(() => process.exit(status), 200).unref();
