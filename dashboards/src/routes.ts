// Hash routes (`#/…`): the platform serves one index.html, so no server-side routing.

export type Route =
  | { name: 'supervision' }
  | { name: 'sensor'; id: string }
  | { name: 'gateways' }
  | { name: 'security' }
  | { name: 'rules' }
  | { name: 'agreements' }
  | { name: 'shared' }
  | { name: 'pooling' }
  | { name: 'audit' }
  | { name: 'login' }
  | { name: 'notFound'; path: string };

export function parseRoute(hash: string): Route {
  let path = hash.startsWith('#') ? hash.slice(1) : hash;
  const q = path.indexOf('?');
  if (q >= 0) path = path.slice(0, q);
  if (path === '' || path === '/') return { name: 'supervision' };
  const parts = path.replace(/^\/+/, '').replace(/\/+$/, '').split('/');
  const [first, second] = parts;
  switch (first) {
    case 'gateways':
      if (parts.length === 1) return { name: 'gateways' };
      break;
    case 'security':
      if (parts.length === 1) return { name: 'security' };
      break;
    case 'rules':
    case 'agreements':
    case 'shared':
    case 'pooling':
    case 'audit':
      if (parts.length === 1) return { name: first };
      break;
    case 'login':
      if (parts.length === 1) return { name: 'login' };
      break;
    case 'sensor':
      if (parts.length === 2 && second) {
        try {
          return { name: 'sensor', id: decodeURIComponent(second) };
        } catch {
          break;
        }
      }
      break;
    default:
      break;
  }
  return { name: 'notFound', path };
}

export function routeHash(route: Route): string {
  switch (route.name) {
    case 'supervision':
      return '#/';
    case 'sensor':
      return `#/sensor/${encodeURIComponent(route.id)}`;
    case 'notFound':
      return `#${route.path}`;
    default:
      return `#/${route.name}`;
  }
}

export const sensorHref = (id: string): string => routeHash({ name: 'sensor', id });

/**
 * A token handed over in the fragment (`#token=bfr_…`, as the demo prints): returns it, or
 * null. The caller removes it from the address bar at once.
 */
export function tokenFromHash(hash: string): string | null {
  const body = hash.startsWith('#') ? hash.slice(1) : hash;
  const query = body.startsWith('/') ? body.slice(body.indexOf('?') + 1 || body.length) : body;
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq) !== 'token') continue;
    try {
      const token = decodeURIComponent(part.slice(eq + 1)).trim();
      return token || null;
    } catch {
      return null;
    }
  }
  return null;
}
