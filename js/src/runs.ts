import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { addCodeToolbars } from './codeblocks';
import { element } from './dom';
import { runLine } from './format';
import { nestedFolds } from './nested';
import { InsertWhere } from './notebook';
import { IRunRow } from './request';

/** What a run card needs from the sidebar: the notebook actions its buttons call. */
export interface IRunActions {
  goToCell(cellId: string): Promise<boolean>;
  putCode(code: string, where: InsertWhere): void;
  /** The keys of the folds of nested runs the user opened: they stay open when the runs are drawn anew. */
  openFolds: Set<string>;
}

/** The reply as Markdown through JupyterLab's own renderer, untrusted: its sanitiser strips scripts and handlers. */
async function renderReply(rendermime: IRenderMimeRegistry, content: string, host: HTMLElement): Promise<void> {
  const model = new MimeModel({ data: { 'text/markdown': content }, trusted: false });
  const renderer = rendermime.createRenderer('text/markdown');
  await renderer.renderModel(model);
  host.appendChild(renderer.node);
}

/**
 * One run: status, model, tokens, cost, time; the prompt as text; what is nested under it, folded (a team's member
 * runs, a workflow's steps); the reply rendered; Go to cell. A nested run (``nested``) names its member and shows
 * the task it was handed as untrusted Markdown, as the panel does; its cell is its parent's.
 */
export async function runCard(
  run: IRunRow,
  rendermime: IRenderMimeRegistry,
  actions: IRunActions,
  nested = false
): Promise<HTMLElement> {
  const card = element('div', nested ? 'nbs-run nbs-nested-run' : 'nbs-run');
  card.dataset.runId = run.run_id;
  card.appendChild(metaLine(run, nested));
  const markdown = async (content: string, host: HTMLElement) => {
    await renderReply(rendermime, content, host);
    addCodeToolbars(host, (code, where) => actions.putCode(code, where));
  };
  if (nested) {
    const task = element('div', 'nbs-task');
    card.appendChild(task);
    await markdown(run.input, task);
  } else {
    card.appendChild(element('div', 'nbs-prompt', run.input));
  }
  const child = (inner: IRunRow) => runCard(inner, rendermime, actions, true);
  for (const folded of await nestedFolds(run, actions.openFolds, child, markdown)) {
    card.appendChild(folded);
  }
  const reply = element('div', 'nbs-reply');
  card.appendChild(reply);
  if (run.error) {
    card.appendChild(element('div', 'nbs-error', run.error));
  }
  if (run.cell_id && !nested) {
    card.appendChild(gotoRow(run, actions));
  }
  if (run.content) {
    await markdown(run.content, reply);
  }
  return card;
}

function metaLine(run: IRunRow, nested: boolean): HTMLElement {
  const meta = element('div', 'nbs-run-meta');
  if (nested && run.agent_name) {
    meta.appendChild(element('span', 'nbs-run-who', run.agent_name));
  }
  meta.appendChild(element('span', `nbs-status nbs-status-${run.status}`, run.status));
  for (const part of runLine(run)) {
    meta.appendChild(element('span', 'nbs-run-fact', part));
  }
  if (run.superseded_by) {
    meta.appendChild(element('span', 'nbs-run-fact', 're-run since'));
  }
  return meta;
}

function gotoRow(run: IRunRow, actions: IRunActions): HTMLElement {
  const row = element('div', 'nbs-run-actions');
  const count = run.execution_count ? ` [${run.execution_count}]` : '';
  const button = element('button', 'jp-Button jp-mod-styled jp-mod-reject nbs-goto', `Go to cell${count}`);
  button.title = 'Make the cell that ran this prompt the active cell';
  const note = element('span', 'nbs-goto-note');
  button.addEventListener('click', async () => {
    const found = await actions.goToCell(run.cell_id as string);
    note.textContent = found ? '' : 'That cell is no longer in this notebook.';
  });
  row.appendChild(button);
  row.appendChild(note);
  return row;
}
