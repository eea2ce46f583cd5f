import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StaticFile {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** The package root, from this file's place in src/ or dist/ (both sit three levels down). */
export const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));

function walk(dir: string, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else out.push(full);
  }
  return out;
}

/**
 * The files the server hands out, read once at start-up into a map from URL path to bytes:
 * the demo page (client/demo/*.html, *.css) at `/` and the built client modules
 * (dist/client/**.js) under `/client/`, with the one module of the server's they import at
 * run time (the protocol's constants, dist/src/protocol/codes.js, at `/src/protocol/codes.js`,
 * where the client's relative import points). A request can only name a file of this map, so
 * no path it spells reaches the file system.
 */
export function loadStaticFiles(root = packageRoot): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const add = (url: string, path: string) => {
    const ext = path.slice(path.lastIndexOf('.'));
    const type = TYPES[ext];
    if (type !== undefined) files.set(url, { body: readFileSync(path), type });
  };
  for (const path of walk(join(root, 'client', 'demo'))) {
    if (path.endsWith('.html') || path.endsWith('.css'))
      add(
        `/${relative(join(root, 'client', 'demo'), path)
          .split(sep)
          .join('/')}`,
        path,
      );
  }
  const built = join(root, 'dist', 'client');
  for (const path of walk(built)) add(`/client/${relative(built, path).split(sep).join('/')}`, path);
  const codes = join(root, 'dist', 'src', 'protocol', 'codes.js');
  if (statSync(codes, { throwIfNoEntry: false })?.isFile()) add('/src/protocol/codes.js', codes);
  const index = files.get('/index.html');
  if (index !== undefined) files.set('/', index);
  return files;
}
