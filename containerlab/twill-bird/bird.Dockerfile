# BIRD 2 for containerlab/twill-bird.clab.yml:
#   docker build -t twill-lab/bird2 -f containerlab/twill-bird/bird.Dockerfile containerlab/twill-bird
# The topology binds bird.conf to /etc/bird/bird.conf and runs `bird -f -c /etc/bird/bird.conf`.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bird2 iproute2 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/bird
CMD ["bird", "-f", "-c", "/etc/bird/bird.conf"]
