import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One session row of /nbsessions/api/sessions. */
export interface ISessionRow {
  session_id: string;
  name: string;
  user_id: string | null;
  agent_name: string | null;
  created_at: number;
  updated_at: number;
  runs: number;
  total_tokens: number;
  cost: number | null;
  /** Spelled by the server's ``records.formatting``, as the footer, CLI and panel write them. */
  tokens_estimated: boolean;
  tokens_text: string;
  cost_text: string;
  duration_text: string;
}

/** One run of /nbsessions/api/sessions/ID/runs. */
export interface IRunRow {
  run_id: string;
  created_at: number;
  status: string;
  input: string;
  content: string;
  model: string | null;
  provider: string | null;
  error: string | null;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost: number | null;
  duration: number | null;
  cell_id: string | null;
  execution_count: number | null;
  superseded_by: string | null;
  kind: string;
  agent_name: string | null;
  /** Spelled by the server's ``records.formatting``, as the footer, CLI and panel write them. */
  tokens_estimated: boolean;
  tokens_text: string;
  cost_text: string;
  duration_text: string;
}

export interface IStoreHead {
  notebook: string;
  store: { kind: string; label: string };
  user: string | null;
  version: string;
}

export interface ISessionList extends IStoreHead {
  sessions: ISessionRow[];
}

export interface IRunList extends IStoreHead {
  session: ISessionRow;
  runs: IRunRow[];
  more: boolean;
}

/** GET a JSON answer of the server extension (token and XSRF handled by ServerConnection). */
export async function requestAPI<T>(
  endPoint: string,
  params: Record<string, string>,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const query = URLExt.objectToQueryString(params);
  const url = URLExt.join(settings.baseUrl, 'nbsessions', 'api', endPoint) + query;
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as any);
  }
  const text = await response.text();
  let data: any = text;
  try {
    data = text ? JSON.parse(text) : {};
  } catch (error) {
    // not JSON: keep the text for the error message
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data.message || String(data));
  }
  return data as T;
}
