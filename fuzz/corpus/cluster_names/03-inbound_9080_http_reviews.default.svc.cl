inbound|9080|http|reviews.default.svc.cluster.local
reviews:9080
