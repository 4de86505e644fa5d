outbound|443||api.svc.example.com
api.svc.example.com
