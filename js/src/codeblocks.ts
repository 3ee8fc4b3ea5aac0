import { Clipboard } from '@jupyterlab/apputils';
import { InsertWhere } from './notebook';

const ACTIONS: [string, string, InsertWhere | 'copy'][] = [
  ['Copy', 'Copy the code', 'copy'],
  ['Insert below', 'A new code cell with this code, below the active cell', 'below'],
  ['Insert above', 'A new code cell with this code, above the active cell', 'above'],
  ['Replace active cell', "Replace the active cell's source with this code", 'replace']
];

/** One toolbar button; ``data-action`` names what it does (the browser tests find buttons by it). */
export function codeButton(label: string, title: string, action: string, onClick: () => void): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'jp-Button jp-mod-minimal nbs-code-action';
  button.textContent = label;
  button.title = title;
  button.setAttribute('aria-label', title);
  button.dataset.action = action;
  button.addEventListener('click', onClick);
  return button;
}

/** A Copy button: the code read when clicked (so a block redrawn in place copies what it shows now). */
export function copyButton(code: () => string): HTMLButtonElement {
  const button = codeButton('Copy', 'Copy the code', 'copy', () => {
    Clipboard.copyToSystem(code());
    button.textContent = 'Copied';
    window.setTimeout(() => (button.textContent = 'Copy'), 1500);
  });
  return button;
}

/** A toolbar over each code block of a rendered reply: Copy, Insert below, Insert above, Replace active cell. */
export function addCodeToolbars(root: HTMLElement, put: (code: string, where: InsertWhere) => void): void {
  root.querySelectorAll('pre').forEach(pre => {
    const code = (pre.querySelector('code') ?? pre).textContent ?? '';
    const bar = document.createElement('div');
    bar.className = 'nbs-code-toolbar';
    for (const [label, title, action] of ACTIONS) {
      bar.appendChild(action === 'copy'
        ? copyButton(() => code)
        : codeButton(label, title, `insert-${action}`, () => put(code, action)));
    }
    pre.parentElement?.insertBefore(bar, pre);
  });
}
