#!/bin/bash
# remove the node's cgroup subtrees (deepest first) in every hierarchy
for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name kinit-fastbed); do
  find $d -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d $d ] && echo "left: $d ($(find $d -type d | wc -l) dirs)"
done
true
