import { Notebook, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

/** Make the cell whose JupyterLab id a run recorded the active cell and scroll it into view; false when gone. */
export async function goToCell(panel: NotebookPanel, cellId: string): Promise<boolean> {
  const notebook = panel.content;
  const index = notebook.widgets.findIndex(cell => cell.model.id === cellId);
  if (index < 0) {
    return false;
  }
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  notebook.mode = 'command';
  await notebook.scrollToCell(notebook.widgets[index], 'center');
  notebook.widgets[index].node.focus();
  return true;
}

export type InsertWhere = 'below' | 'above' | 'replace';

/** A code cell holding ``code`` below or above the active cell, or the active cell's source replaced. */
export function putCode(notebook: Notebook, code: string, where: InsertWhere): void {
  if (where === 'below') {
    NotebookActions.insertBelow(notebook);
  } else if (where === 'above') {
    NotebookActions.insertAbove(notebook);
  }
  if (where !== 'replace' && notebook.activeCell?.model.type !== 'code') {
    NotebookActions.changeCellType(notebook, 'code');
  }
  notebook.activeCell?.model.sharedModel.setSource(code);
}
