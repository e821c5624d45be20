"""Face swappers: mesh (landmark warp, CPU) and inswapper (neural)."""
