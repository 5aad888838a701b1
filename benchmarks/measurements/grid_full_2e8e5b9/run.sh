#!/bin/bash
cd /tmp/s30/grid
export PYTHONPATH=/tmp/s30/grid/src OMP_NUM_THREADS=1
i=0
for row in "tall 10 x 20,000 x 10," "tall 10 x 2,000 x 100, 32" "tall 10 x 20,000 x 100," "10 x 500 x 4,000, 8" "10 x 1,000 x 1,000, 32" "10 x 100 x 10,000, 32" "10 x 100 x 100,000 float32, 8" "10 x 1,000 x 10,000, 8" "10 x 1,000 x 10,000, 32" "1,000,000 float32, 8" "1,000,000 float32, 32"; do
  i=$((i+1))
  echo "$(date +%T) start $row" >> progress.log
  /usr/bin/time -v nice -n 19 /work/main/.venv/bin/python benchmarks/bench_spectrum.py --grid --full --only "$row" --repeats 3 --json row$i.json > row$i.log 2> row$i.err
  echo "$(date +%T) end $row rc=$?" >> progress.log
done
