// The SDK's requests through Obsidian's requestUrl: it is not bound by the page's CORS
// (the app's origin is app://obsidian.md, which a pool does not list), and it answers 4xx
// and 5xx as values when told not to throw, which the SDK turns into PoolErrors.
import type { FetchLike } from "@owp/protocol";
import type { RequestUrlParam, RequestUrlResponse } from "obsidian";

export type RequestUrl = (request: RequestUrlParam) => Promise<RequestUrlResponse>;

export function requestUrlFetch(requestUrl: RequestUrl): FetchLike {
  return async (request: Request) => {
    const headers: Record<string, string> = {};
    request.headers.forEach((value, key) => {
      headers[key] = value;
    });
    const body = request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer();
    const answer = await requestUrl({
      url: request.url,
      method: request.method,
      headers,
      body: body && body.byteLength > 0 ? body : undefined,
      throw: false,
    });
    // 204 and 304 may carry no body
    const empty = answer.status === 204 || answer.status === 304;
    return new Response(empty ? null : answer.arrayBuffer, { status: answer.status, headers: answer.headers });
  };
}
