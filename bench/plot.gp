# Sessions/s and p99 session latency against concurrency, one line per
# server. bench/compare calls: gnuplot -e "data='F'; out='P.png'" plot.gp
# Columns of the data file: concurrency, then sessions/s and p99 ms for
# the limit server, tlsgate and Postfix ("?" where a server was not run).
set terminal pngcairo size 1100,460 font ",10"
set output out
set datafile missing "?"
set multiplot layout 1,2 title "STARTTLS sessions on loopback, same client, ECDSA P-256, X25519, TLS 1.3, full handshakes"
set logscale x 2
set xlabel "concurrency (client connections)"
set grid
set key top left
set ylabel "sessions per second"
set yrange [0:*]
plot data using 1:2 with linespoints lw 2 title "limit (bare TLS handshake)", \
     data using 1:4 with linespoints lw 2 title "tlsgate (STARTTLS session)", \
     data using 1:6 with linespoints lw 2 title "Postfix smtpd (STARTTLS session)"
set ylabel "p99 session latency (ms)"
set logscale y 10
set yrange [*:*]
plot data using 1:3 with linespoints lw 2 title "limit", \
     data using 1:5 with linespoints lw 2 title "tlsgate", \
     data using 1:7 with linespoints lw 2 title "Postfix"
unset multiplot
