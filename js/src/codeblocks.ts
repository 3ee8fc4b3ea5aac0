import { Clipboard } from '@jupyterlab/apputils';
import { InsertWhere } from './notebook';

const ACTIONS: [string, string, InsertWhere | 'copy'][] = [
  ['Copy', 'Copy the code', 'copy'],
  ['Insert below', 'A new code cell with this code, below the active cell', 'below'],
  ['Insert above', 'A new code cell with this code, above the active cell', 'above'],
  ['Replace active cell', "Replace the active cell's source with this code", 'replace']
];

/** A toolbar over each code block of a rendered reply: Copy, Insert below, Insert above, Replace active cell. */
export function addCodeToolbars(root: HTMLElement, put: (code: string, where: InsertWhere) => void): void {
  root.querySelectorAll('pre').forEach(pre => {
    const code = (pre.querySelector('code') ?? pre).textContent ?? '';
    const bar = document.createElement('div');
    bar.className = 'nbs-code-toolbar';
    for (const [label, title, action] of ACTIONS) {
      const button = document.createElement('button');
      button.className = 'jp-Button jp-mod-minimal nbs-code-action';
      button.textContent = label;
      button.title = title;
      button.dataset.action = action === 'copy' ? 'copy' : `insert-${action}`;
      button.addEventListener('click', () => {
        if (action === 'copy') {
          Clipboard.copyToSystem(code);
          button.textContent = 'Copied';
          window.setTimeout(() => (button.textContent = label), 1500);
        } else {
          put(code, action);
        }
      });
      bar.appendChild(button);
    }
    pre.parentElement?.insertBefore(bar, pre);
  });
}
