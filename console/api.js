// herald's HTTP API as the console calls it: the same origin, the operator's bearer token,
// JSON both ways, and every 4xx/5xx thrown as an ApiProblem carrying the field it names.

import { currentToken, signOut } from './sign-in.js';

export class ApiProblem extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code;
    this.field = error?.field;
  }
}

/** `method path` with a JSON `body`, or `{ file }` sent as it is (text/csv). */
export async function api(method, path, body, { file } = {}) {
  const headers = { authorization: `Bearer ${currentToken()}` };
  let payload;
  if (file !== undefined) {
    payload = file;
    headers['content-type'] = 'text/csv';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (response.status === 401) {
    signOut('The API refused your token (expired, or not for this stack): sign in again.');
  }
  if (!response.ok) {
    // API Gateway's own 401 is {"message": "Unauthorized"}; herald's errors are {"error": {…}}.
    throw new ApiProblem(response.status, json?.error ?? { message: json?.message ?? (text || response.statusText) });
  }
  return json;
}

export const path = (strings, ...values) =>
  strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
