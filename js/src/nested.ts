import { element } from './dom';
import { IRunRow, IStepRow } from './request';

/** Draws a run nested under another (a member run, a step's run) as a card: passed in, so the modules stay acyclic. */
export type NestedCard = (run: IRunRow) => Promise<HTMLElement>;
/** Renders untrusted Markdown into a host element. */
export type Markdown = (content: string, host: HTMLElement) => Promise<void>;

/**
 * A closed fold, as the panel and ``%agent history`` fold nested runs: a native ``<details>``, so its title is a
 * button the keyboard reaches (Tab, then Enter or Space) and a screen reader announces as collapsed or expanded.
 * The title is text, never parsed. ``open`` holds the keys of folds the user opened: a run landing redraws the
 * runs, and what was open stays open.
 */
export function fold(key: string, className: string, title: string, open: Set<string>): HTMLDetailsElement {
  const details = document.createElement('details');
  details.className = `nbs-fold ${className}`;
  details.dataset.foldKey = key;
  details.open = open.has(key);
  details.appendChild(element('summary', 'nbs-fold-title', title));
  details.addEventListener('toggle', () => (details.open ? open.add(key) : open.delete(key)));
  return details;
}

/** What is folded under a run: a workflow's steps, then its nested runs (a team's member runs). */
export async function nestedFolds(
  run: IRunRow,
  open: Set<string>,
  card: NestedCard,
  markdown: Markdown
): Promise<HTMLElement[]> {
  const folds: HTMLElement[] = [];
  if (run.steps && run.steps.length) {
    const steps = fold(`steps:${run.run_id}`, 'nbs-steps', run.steps_text, open);
    for (const step of run.steps) {
      steps.appendChild(await stepBlock(step, card, markdown));
    }
    folds.push(steps);
  }
  if (run.nested && run.nested.length) {
    const members = fold(`nested:${run.run_id}`, 'nbs-members', run.nested_text, open);
    for (const child of run.nested) {
      members.appendChild(await card(child));
    }
    folds.push(members);
  }
  return folds;
}

/** One step: number, name, kind and status; its output as untrusted Markdown, or its error; the run it made. */
async function stepBlock(step: IStepRow, card: NestedCard, markdown: Markdown): Promise<HTMLElement> {
  const block = element('div', 'nbs-step');
  const head = element('div', 'nbs-step-head');
  head.appendChild(element('span', 'nbs-step-name', `step ${step.number} · ${step.name} · ${step.kind}`));
  head.appendChild(element('span', `nbs-status nbs-status-${step.status}`, step.status));
  block.appendChild(head);
  if (step.output !== null && step.output !== undefined) {
    const output = element('div', 'nbs-step-output');
    block.appendChild(output);
    await markdown(step.output, output);
  }
  if (step.error) {
    block.appendChild(element('div', 'nbs-error', step.error));
  }
  if (step.run) {
    block.appendChild(await card(step.run));
  }
  return block;
}
