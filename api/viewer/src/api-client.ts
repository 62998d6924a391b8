/**
 * The viewer's only door to the HTTP API: JSON requests, downloads and images, with the user's API
 * key (kept in localStorage) sent as `Authorization: Bearer <key>`. API errors (`{error,
 * message}`) become ApiRequestError; it renders nothing.
 */
import type { SessionReply } from './types.js';

const KEY_STORAGE = 'tessera.apiKey';
/** Blob URLs kept for images fetched with the key; older ones are revoked. */
const IMAGE_CACHE_ENTRIES = 400;

/** An error answer of the API, or a request that never got one (`code` NETWORK). */
export class ApiRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** HTTP status; 0 when the server could not be reached. */
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }

  get unauthorized(): boolean {
    return this.status === 401;
  }
}

/** Requests to the API of the page's own origin, with the user's key when one is set. */
export class ApiClient {
  private key: string | null;
  private readonly images = new Map<string, Promise<string>>();
  /** Called when a request is refused for want of a (valid) key. */
  onUnauthorized: (error: ApiRequestError) => void = () => {};

  constructor(private readonly storage: Storage = window.localStorage) {
    this.key = storage.getItem(KEY_STORAGE);
  }

  get hasKey(): boolean {
    return this.key !== null;
  }

  /** Headers that carry the key, for OpenSeadragon's tile requests. */
  authHeaders(): Record<string, string> {
    return this.key ? { Authorization: `Bearer ${this.key}` } : {};
  }

  /** Stores (or, with null, forgets) the key; cached images fetched with the old key are dropped. */
  setKey(key: string | null): void {
    this.key = key && key.trim() ? key.trim() : null;
    if (this.key) this.storage.setItem(KEY_STORAGE, this.key);
    else this.storage.removeItem(KEY_STORAGE);
    this.dropImages();
  }

  session(): Promise<SessionReply> {
    return this.json<SessionReply>('GET', '/v1/session');
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.json<T>('GET', path, undefined, signal);
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.json<T>('POST', path, body, signal);
  }

  /** A text answer (the Deep Zoom descriptor, a CSV export). */
  async text(method: 'GET' | 'POST', path: string, body?: unknown, accept = '*/*'): Promise<string> {
    const response = await this.request(method, path, body, accept);
    return response.text();
  }

  /**
   * A URL an <img> can show: the path itself without a key; with one, the image fetched with the
   * key and shown through a blob URL (cached, so a gallery re-render fetches nothing).
   */
  imageUrl(path: string): Promise<string> {
    if (!this.key) return Promise.resolve(path);
    let url = this.images.get(path);
    if (!url) {
      url = this.request('GET', path, undefined, 'image/*')
        .then((response) => response.blob())
        .then((blob) => URL.createObjectURL(blob));
      url.catch(() => this.images.delete(path));
      this.images.set(path, url);
      this.evictImages();
    }
    return url;
  }

  private async json<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.request(method, path, body, 'application/json', signal);
    return (await response.json()) as T;
  }

  private async request(method: 'GET' | 'POST', path: string, body: unknown, accept: string, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Accept: accept, ...this.authHeaders() };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...(signal ? { signal } : {}) });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      throw new ApiRequestError('NETWORK', `Cannot reach the Tessera server (${(error as Error).message}).`, 0);
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.unauthorized) this.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  private evictImages(): void {
    while (this.images.size > IMAGE_CACHE_ENTRIES) {
      const oldest = this.images.keys().next().value as string;
      const url = this.images.get(oldest);
      this.images.delete(oldest);
      void url?.then((blobUrl) => URL.revokeObjectURL(blobUrl), () => {});
    }
  }

  private dropImages(): void {
    for (const url of this.images.values()) void url.then((blobUrl) => URL.revokeObjectURL(blobUrl), () => {});
    this.images.clear();
  }
}

async function errorOf(response: Response): Promise<ApiRequestError> {
  let code = `HTTP_${response.status}`;
  let message = `The server answered ${response.status} ${response.statusText}.`;
  try {
    const body = (await response.json()) as { error?: unknown; message?: unknown };
    if (typeof body.error === 'string') code = body.error;
    if (typeof body.message === 'string') message = body.message;
  } catch {
    // Not JSON (a proxy's error page): the status line is all there is.
  }
  return new ApiRequestError(code, message, response.status);
}

/** Sets an <img>'s source through the client (a blob URL when a key is in use). */
export function showImage(api: ApiClient, img: HTMLImageElement, path: string): void {
  img.dataset.src = path;
  img.addEventListener('error', () => img.classList.add('broken'), { once: true });
  api.imageUrl(path).then(
    (url) => {
      if (img.dataset.src === path) img.src = url;
    },
    () => img.classList.add('broken'),
  );
}

/** A message a person can act on, for any failed request. */
export function describeError(error: unknown): string {
  if (error instanceof ApiRequestError) {
    if (error.unauthorized) return 'This server needs a valid API key: enter one with the API key button (top right).';
    return error.code === 'NETWORK' ? error.message : `${error.message} (${error.code})`;
  }
  return `Something went wrong: ${error instanceof Error ? error.message : String(error)}`;
}
