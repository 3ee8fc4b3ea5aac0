import { IRunRow, ISessionRow } from './request';

/** "1,234 tokens", "$0.0012" (or "cost unknown"), a local date and time, "1.2 s". */
export function tokens(count: number): string {
  return `${count.toLocaleString('en-US')} tokens`;
}

export function cost(value: number | null): string {
  if (value === null || value === undefined) {
    return 'cost unknown';
  }
  return value >= 0.01 ? `$${value.toFixed(2)}` : `$${value.toPrecision(2)}`;
}

export function when(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toLocaleString();
}

export function seconds(value: number | null): string {
  return value === null || value === undefined ? '' : `${value.toFixed(1)} s`;
}

export function sessionLine(session: ISessionRow): string {
  const runs = `${session.runs} run${session.runs === 1 ? '' : 's'}`;
  return [runs, tokens(session.total_tokens), cost(session.cost), when(session.updated_at)].join(' · ');
}

export function runLine(run: IRunRow): string[] {
  return [run.model ?? 'model unknown', tokens(run.total_tokens), cost(run.cost), when(run.created_at),
    seconds(run.duration)].filter(part => part !== '');
}
