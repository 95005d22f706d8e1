// Builds dist/: the one bundle esbuild makes from src/main.js, beside the page and its styles.
// dist/ is what the edge serves ([edge] web_dir); it is made by scripts/up and scripts/test and
// never committed.
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');
await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outfile: 'dist/app.js',
  logLevel: 'info',
});
for (const file of ['index.html', 'style.css']) cpSync(`src/${file}`, `dist/${file}`);
