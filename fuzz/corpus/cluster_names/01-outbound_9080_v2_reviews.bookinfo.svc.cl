outbound|9080|v2|reviews.bookinfo.svc.cluster.local
reviews.bookinfo:9080
