"""Face enhancers that run after the swap (``--enhancer``): gfpgan."""
