/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

// The platform serves dist/ at `/`: relative asset paths (`base: './'`) and hash routing mean
// no server-side routing is needed. `npm run dev` proxies the API to a running platform
// (BEFFROI_API, default http://127.0.0.1:8080; `beffroi demo --api-port 18080` for instance).
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
const api = env?.['BEFFROI_API'] ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: true, ws: true },
    },
  },
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
  },
});
