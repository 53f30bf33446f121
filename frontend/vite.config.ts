import { defineConfig } from "vitest/config";

// Built into ../static/dist; Django reads .vite/manifest.json to find the hashed files.
export default defineConfig({
  base: "/static/dist/",
  build: {
    outDir: "../static/dist",
    emptyOutDir: true,
    manifest: true,
    target: "es2022",
    rollupOptions: {
      input: {
        main: "src/main.ts",
        explorer: "src/explorer/main.ts",
        generate: "src/site/generate.ts",
        batch: "src/site/batch.ts",
        upload: "src/site/upload.ts",
        subgraphs: "src/site/subgraphs.ts",
        dashboards: "src/site/dashboards.ts",
      },
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
