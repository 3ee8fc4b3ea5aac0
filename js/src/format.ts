import { IRunRow, ISessionRow } from './request';

/**
 * Tokens ("12,345", "~12" when estimated), cost ("$0.0012", "cost n/a") and duration ("640 ms", "1.20 s") come
 * spelled from the server, by the same Python functions as the cell footer, the CLI and the panel: the sidebar
 * never formats those numbers itself, so it cannot write them differently. Only the time is local to the browser.
 */
export function when(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toLocaleString();
}

export function sessionLine(session: ISessionRow): string {
  const runs = `${session.runs} run${session.runs === 1 ? '' : 's'}`;
  return [runs, `${session.tokens_text} tokens`, session.cost_text, when(session.updated_at)].join(' · ');
}

export function runLine(run: IRunRow): string[] {
  const duration = run.duration === null || run.duration === undefined ? '' : run.duration_text;
  return [run.model ?? 'model unknown', `${run.tokens_text} tokens`, run.cost_text, when(run.created_at),
    duration].filter(part => part !== '');
}
