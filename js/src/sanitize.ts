import { IRenderMime } from '@jupyterlab/rendermime';

/**
 * JupyterLab's sanitiser, then every image turned into a link to it: a reply cannot make the browser load
 * anything by itself (a tracking pixel), as the kernel's own rendering of replies also does. The HTML is
 * rebuilt in an inert document (DOMParser's loads nothing), before the renderer puts it in the page.
 */
export class NoImagesSanitizer implements IRenderMime.ISanitizer {
  constructor(private readonly base: IRenderMime.ISanitizer) {}

  getAutolink(): boolean {
    return this.base.getAutolink ? this.base.getAutolink() : true;
  }

  allowNamedProperties = false;

  sanitize(dirty: string, options?: IRenderMime.ISanitizerOptions): string {
    const clean = this.base.sanitize(dirty, options);
    if (!/<img/i.test(clean)) {
      return clean;
    }
    const doc = new DOMParser().parseFromString(`<body>${clean}</body>`, 'text/html');
    doc.querySelectorAll('img').forEach(img => {
      const link = doc.createElement('a');
      const src = img.getAttribute('src') ?? '';
      link.textContent = `[image: ${img.getAttribute('alt') || src}]`;
      if (src) {
        link.setAttribute('href', src);
      }
      link.setAttribute('rel', 'noopener noreferrer');
      link.setAttribute('target', '_blank');
      img.replaceWith(link);
    });
    return this.base.sanitize(doc.body.innerHTML, options);
  }
}
