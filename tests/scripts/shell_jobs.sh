#!/bin/bash
# Command substitution, a five-command pipeline, xargs -P4 and wait -n (bash).
x=$(echo hello | tr a-z A-Z)
echo "sub: $x $(( $(echo 3) + 4 ))"
seq 1 20 | grep 1 | sort -r | head -5 | wc -l
printf '%s\n' a b c d e f g h | xargs -P4 -n1 sh -c 'echo item-$0' | sort
sleep 0.3 & p1=$!
(sleep 0.05; exit 7) & p2=$!
wait -n; echo "wait-n $?"
wait $p1; echo done
