outbound|443||*.example.com
payments.example.com
