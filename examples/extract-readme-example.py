#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write the README's C example (its one ```c block) to a file."""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
blocks = re.findall(r"^```c\n(.*?)^```$", text, re.S | re.M)
if len(blocks) != 1:
    sys.exit(f"{sys.argv[1]}: expected one C block, found {len(blocks)}")
open(sys.argv[2], "w", encoding="utf-8").write(blocks[0])
