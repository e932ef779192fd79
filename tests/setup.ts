// tsyringe throws on import without a Reflect metadata polyfill (toolchain notes §4).
import "reflect-metadata";
