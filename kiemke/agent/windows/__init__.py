"""Windows access: PowerShell CIM queries and registry reads behind one small runner."""
