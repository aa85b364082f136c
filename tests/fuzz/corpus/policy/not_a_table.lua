return policy(nil)
