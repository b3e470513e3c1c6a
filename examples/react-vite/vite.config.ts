import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Nothing meshwire-specific: the package's wasm is found through
// `new URL(..., import.meta.url)`, which Vite follows on its own.
export default defineConfig({ plugins: [react()] });
